"""The `pyvirt` command line: virsh's commands and output. Entry point: pyvirt.cli.main:main."""
