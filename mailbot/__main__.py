"""`python -m mailbot` = the `mailbot` command."""

from mailbot.cli import main

main()
