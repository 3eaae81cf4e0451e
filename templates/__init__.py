"""Jinja2 templates and data files shipped with mailbot."""
