"""Is the exported graph right: its serving signatures, loaded and run as TF Serving does.

Reading a SavedModel's signatures (also ``python -m export inspect``), loading it
through a session like TF Serving's C++ loader, the sample inputs it is run on,
and comparing its outputs with the original's (parity). Imports only the
package's shared modules.
"""
