virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-win11 --memory 512 --osinfo win11 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
