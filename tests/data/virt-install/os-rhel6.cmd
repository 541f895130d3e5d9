virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-rhel6 --memory 512 --osinfo rhel6.10 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
