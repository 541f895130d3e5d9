virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-debian10 --memory 512 --osinfo debian10 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
