"""Imported once by the server that report render processes fork from (``reports.pdf``): WeasyPrint and the system
fonts are loaded there, so each render process starts with them."""

from reports import pdf

pdf.font_config()
