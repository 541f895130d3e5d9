virt-install --connect qemu:///session --print-xml 1 --dry-run --name boot-uefi --memory 512 --osinfo debian11 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2 --boot uefi
