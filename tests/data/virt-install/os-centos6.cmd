virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-centos6 --memory 512 --osinfo centos6.10 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
