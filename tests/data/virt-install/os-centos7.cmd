virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-centos7 --memory 512 --osinfo centos7.0 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
