"""Make the brute-force reference importable from the replay tests."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
