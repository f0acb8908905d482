"""`python -m agent_studio` runs the `agent-studio` command."""

from agent_studio.cli import main

if __name__ == "__main__":
    main()
