virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-fedora37 --memory 512 --osinfo fedora37 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
