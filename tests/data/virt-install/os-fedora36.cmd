virt-install --connect qemu:///session --print-xml 1 --dry-run --name os-fedora36 --memory 512 --osinfo fedora36 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2
