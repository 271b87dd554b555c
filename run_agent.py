#!/usr/bin/env python3
"""Run the hostagent agent from a checkout: ``python run_agent.py --config config/agent.yaml``."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from hostagent.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
