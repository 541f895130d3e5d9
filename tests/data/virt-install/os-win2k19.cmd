virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-win2k19 --memory 512 --osinfo win2k19 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
