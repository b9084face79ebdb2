"""The window's PACS dialog (File › PACS…): search, retrieve, send and receive on workers."""
