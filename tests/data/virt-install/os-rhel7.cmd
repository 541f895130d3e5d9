virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-rhel7 --memory 512 --osinfo rhel7.9 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
