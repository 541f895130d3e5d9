virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-debian12 --memory 512 --osinfo debiantesting --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
