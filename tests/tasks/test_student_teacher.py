"""The student-teacher task of paper 000 (App. B): readout ``y = W_out h`` (paper 004 eq. 22)."""

import torch

from sntkit.tasks import StudentTeacherTask, make_student


def test_loss_is_the_mse_of_the_linear_readout():
    """``loss`` equals the MSE of ``y_t = W_out h_t`` with ``W_out`` the two readout rows of the
    identity, computed here densely by unrolling the student by hand."""
    task = StudentTeacherTask.build(n=6, batch=5, steps=4, seed=1, dtype=torch.float64)
    student = make_student(6, seed=2, dtype=torch.float64)
    W_out = torch.eye(6, dtype=torch.float64)[:2]  # read units 0 and 1
    h, ys = task.h0, []
    params = dict(student.named_parameters())
    for _ in range(task.steps):
        h = torch.tanh(h) @ params["W"].T + params["b"]  # post form h' = W tanh(h) + b
        ys.append(h @ W_out.T)
    y = torch.stack(ys, dim=1)
    assert task.targets.shape == (5, 4, 2)
    torch.testing.assert_close(task.loss(student), (y - task.targets).square().mean())
    assert task.loss(task.teacher) == 0
