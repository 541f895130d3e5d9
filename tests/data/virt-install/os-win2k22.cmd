virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-win2k22 --memory 512 --osinfo win2k22 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
