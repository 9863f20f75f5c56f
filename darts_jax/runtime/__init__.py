"""What a run needs around its steps: checkpoints, preemption, metrics, devices and hosts."""
