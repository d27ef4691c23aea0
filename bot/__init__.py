"""digitbot's Telegram side: `python -m bot` starts long polling (see bot/app.py)."""
