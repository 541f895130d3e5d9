"""The tiny test guest: a Debian kernel + busybox initramfs for integration tests.

Use ``from tests.guest.build import build, GuestImage, READY_MARKER``; the
docstring of ``tests/guest/build.py`` says what the guest prints on its
console and which kernel command line to boot it with.
"""
