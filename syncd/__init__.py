"""syncd: keeps contacts in step between CRMs, APSIS One and Outlook address books."""

__version__ = "0.1.0"
