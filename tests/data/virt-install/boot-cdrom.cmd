virt-install --connect qemu:///session --print-xml 1 --dry-run --name boot-cdrom --memory 512 --osinfo generic --cdrom /tmp/pyvirt-corpus/install.iso --disk size=8
