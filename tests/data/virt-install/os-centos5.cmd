virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-centos5 --memory 512 --osinfo centos5.11 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
