virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-freebsd13 --memory 512 --osinfo freebsd13.1 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
