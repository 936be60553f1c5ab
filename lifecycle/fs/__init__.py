"""The bottom floor for touching trees someone else may have written (D13).

Everything here works on directory descriptors and never follows a symlink below the root it was
given: :class:`~lifecycle.fs.tree.Tree` opens, walks and reads; :func:`read_bounded` caps sizes;
:func:`read_file` is the one way TOML files are read (capped, never waiting on a FIFO).
It imports nothing from the rest of the package but :mod:`lifecycle.errors`.
"""

from lifecycle.fs.tree import NotRegularError, Tree, TreeError, read_bounded, read_file

__all__ = ["NotRegularError", "Tree", "TreeError", "read_bounded", "read_file"]
