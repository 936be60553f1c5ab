"""The bottom floor for touching trees someone else may have written (D13).

Everything here works on directory descriptors and never follows a symlink below the root it was
given: :class:`~lifecycle.fs.tree.Tree` opens, walks and reads; :func:`read_bounded` caps sizes.
It imports nothing from the rest of the package but :mod:`lifecycle.errors`.
"""

from lifecycle.fs.tree import NotRegularError, Tree, TreeError, read_bounded

__all__ = ["NotRegularError", "Tree", "TreeError", "read_bounded"]
