"""Engines: the only code that knows vLLM, Hugging Face model classes and HTTP."""
