"""`python -m bot`: start digitbot with long polling."""

from bot.app import main

if __name__ == "__main__":
    main()
