virt-install --connect qemu:///session --print-xml 1 --dry-run --name usb-companions-q35 --memory 512 --osinfo rhel6.10 --import --disk path=/tmp/pyvirt-corpus/disk.qcow2,format=qcow2 --machine q35
