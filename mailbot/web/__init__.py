"""The personal account on the web («личный кабинет»): a second face of the same core.

Pages read and write the same rows as the e-mail path, through the same functions; nothing
is kept in a web process's memory, so any number of them can run beside the daemon.
"""
