virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-ubuntu20.04 --memory 512 --osinfo ubuntu20.04 --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
