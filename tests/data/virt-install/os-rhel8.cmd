virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-rhel8 --memory 512 --osinfo rhel8.6 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
