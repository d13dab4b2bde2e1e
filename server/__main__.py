"""`python -m server --rest_api_port=8501 --model_name=MLP --model_base_path=/abs/path`."""
import sys

from .cli import main

sys.exit(main())
