virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-win7 --memory 512 --osinfo win7 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
