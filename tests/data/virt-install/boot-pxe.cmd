virt-install --connect qemu:///session --print-xml 1 --dry-run --name boot-pxe --memory 512 --osinfo debian11 --pxe --disk size=8
