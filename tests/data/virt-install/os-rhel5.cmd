virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-rhel5 --memory 512 --osinfo rhel5.11 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
