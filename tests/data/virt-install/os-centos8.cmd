virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-centos8 --memory 512 --osinfo centos8 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
