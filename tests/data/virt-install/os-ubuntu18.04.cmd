virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-ubuntu18.04 --memory 512 --osinfo ubuntu18.04 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
