"""sntkit — the state-space NTK toolkit.

Layers (imports flow downward only): ``operators`` → ``linalg`` → ``models`` → ``ntk`` →
``dynamics`` → ``optim`` → ``tasks`` → ``experiments`` → ``cli``.
"""

__version__ = "0.1.0"
