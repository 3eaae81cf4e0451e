"""Mail in and mail out: intake, archive, parsing and classifying a message, outbox, transports.

Intake and the outbox never call each other; they meet only through the database.
"""
