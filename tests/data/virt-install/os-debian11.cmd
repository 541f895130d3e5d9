virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-debian11 --memory 512 --osinfo debian11 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
