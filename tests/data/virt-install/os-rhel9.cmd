virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-rhel9 --memory 512 --osinfo rhel9.1 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
