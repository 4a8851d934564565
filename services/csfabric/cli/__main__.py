"""``python -m csfabric.cli``: how ``csfabric dev`` starts its children."""

from csfabric.cli import main

main()
