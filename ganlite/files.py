"""Writing files the way ganlite does, for code built on it (training, export): atomic
replacement under recognisable temporary names (`.NAME.ganlite-PID.tmp`), checks that a
file or folder can be written before any work, every OSError a one-line OutputError
naming the file.

    from ganlite.files import atomic_write, atomic_write_bytes
    atomic_write_bytes("card.json", text.encode())
    atomic_write("log.csv", lambda tmp: tmp.write_text(rows))   # writers that need a path

(numpy's save/savez append .npy/.npz to a path without that suffix: give them an open
file, `with open(tmp, "wb") as f: numpy.savez(f, ...)`.)
"""
from ._files import (
                     atomic_write,
                     atomic_write_all,
                     atomic_write_bytes,
                     check_new_file,
                     make_folder,
                     temporary_name,
)

__all__ = ["atomic_write", "atomic_write_all", "atomic_write_bytes", "check_new_file",
           "make_folder", "temporary_name"]
