virt-install --connect qemu:///session --print-xml 1 --dry-run --name boot-diskless --memory 512 --osinfo generic --pxe --disk none
