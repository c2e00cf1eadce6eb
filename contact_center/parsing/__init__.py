"""Pure parsing and normalising: files, encodings, read limits, list rows, phones, names,
locations and the quality gates. No I/O beyond reading the file it is given, no database.
"""
