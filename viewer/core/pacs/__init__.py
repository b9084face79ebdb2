"""PACS: query, retrieve, receive and send, with no hand-written protocol code (Qt-free).

- :mod:`.nodes`: the nodes (``AET@HOST:PORT`` for DIMSE, a DICOMweb base URL) and radview's own AE title
  and port, kept in ``<data dir>/pacs.json``;
- :mod:`.query`: what a search asks (level, patient, dates, modality, UIDs) and the rows it answers;
- :mod:`.dimse`: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE with pynetdicom;
- :mod:`.dicomweb`: QIDO-RS, WADO-RS and STOW-RS with dicomweb-client;
- :mod:`.study_cache`: where retrieved and received instances go (one folder per study, each instance
  written atomically, so a resume skips what is on disk and a partial study is known as partial);
- :mod:`.storage_scp`: the storage SCP that accepts pushed studies (and a C-MOVE's instances).

Every failure is a :class:`.errors.PacsError` with a one-line reason and the command line's exit code.
"""
