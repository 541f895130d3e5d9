virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-centos-stream9 --memory 512 --osinfo centos-stream9 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
