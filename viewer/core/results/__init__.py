"""radview's results as standard DICOM objects (highdicom), and reading such objects back (Qt-free).

- :mod:`.content`: what the objects carry (findings, lines, the model) and the codes they use;
- :mod:`.seg`: the findings' masks as a DICOM Segmentation on the source series' frames;
- :mod:`.sr`: the findings, the reader's decisions and lines as a TID 1500 Measurement Report;
- :mod:`.read`: SEG and TID 1500 SR read back, radview's own and other systems'.
"""
