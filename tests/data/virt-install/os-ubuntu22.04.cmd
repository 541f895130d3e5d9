virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-ubuntu22.04 --memory 512 --osinfo ubuntu22.04 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
