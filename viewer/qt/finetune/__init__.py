"""The fine-tune dialog: choose a base and data, train in a child process, read the metrics, pick a
threshold, compare before and after, save and activate (issue C). See :mod:`viewer.qt.finetune.dialog`."""
