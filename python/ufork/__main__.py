"""python3 -m ufork wsgi [OPTIONS] MODULE:APP: the ufork command's wsgi
(its flags, checks and messages are the same code), run in this python3."""
import sys

from . import _ufork

sys.exit(_ufork.main(['ufork'] + sys.argv[1:]))
