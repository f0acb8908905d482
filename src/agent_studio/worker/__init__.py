"""The distributed-mode worker (`agent-studio worker`): runs dispatched calls on LiveKit rooms."""
